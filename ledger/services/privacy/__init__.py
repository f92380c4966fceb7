"""Privacy: erasure by crypto-shredding (GDPR Art. 17), legal holds, and the two-person rule
(NIST AU-9(5)) over both.

An admin requests (``requests``); another admin approves (``approve``) before the request
expires; approving an erasure executes it in the same transaction: the scope's data keys are
destroyed under the log's lock, so no batch appends meanwhile and every later append to the
scope is refused, by any server process. Every step, refusals included, is an event in the
tenant's system log (stream ``erasure``). Entries, hashes, proofs and signatures stay as they
were: only the payloads become unreadable.
"""
