"""One server process: what it holds (settings, engine, key caches, the group committer, the
anchoring schedule) and the supervisor that deals connections to several of them."""
