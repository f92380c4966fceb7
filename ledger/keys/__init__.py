"""Master keys: the envelope a data key or signing key is wrapped in, and who holds it.

    provider.py   KeyProvider (wrap / unwrap under a key that never leaves it), the local
                  AES-256-GCM provider, its key id
    ring.py       MasterKeyRing: the providers a process holds, keyed by master key id
    config.py     the ring from settings: LEDGER_KEY_PROVIDER, LEDGER_MASTER_KEY_FILE,
                  LEDGER_MASTER_KEY, LEDGER_EXTRA_KEY_PROVIDERS, the plugin hook

Nothing here touches the database: ``ledger.storage.keystore`` records which master key
wrapped each key, and ``ledger.services.admin.master_keys`` rotates and retires them.
"""
