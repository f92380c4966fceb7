"""The one table from errors to the CLI's exit codes.

0 success; 1 a check found stored data that does not check out (tampered); 2 could not run
(bad arguments or settings, no database, a refused request): nothing was proven either way. A
command that could not run never says "tampered". ``EXIT_CODES`` names every class of the tree
(``ledger/errors.py``); a test fails if a class is missing.
"""

from __future__ import annotations

from ledger import errors as e

EXIT_OK, EXIT_INTEGRITY, EXIT_FAILED = 0, 1, 2

EXIT_CODES: dict[type[e.LedgerError], int] = {
    e.LedgerError: EXIT_FAILED,
    # Crypto errors that reach the command line come from what the operator passed in (a key
    # string, a note) or from key material the command could not open: it could not run. The
    # verifiers catch what they find in stored data and report it as an integrity failure.
    e.CryptoError: EXIT_FAILED,
    e.InclusionProofInvalid: EXIT_FAILED,
    e.ConsistencyProofInvalid: EXIT_FAILED,
    e.NoteFormatError: EXIT_FAILED,
    e.SignatureInvalid: EXIT_FAILED,
    e.DecryptionFailed: EXIT_FAILED,
    e.CanonicalizationError: EXIT_FAILED,
    e.ClientError: EXIT_FAILED,
    e.MalformedRequest: EXIT_FAILED,
    e.TrailFileMalformed: EXIT_FAILED,
    e.BundleMalformed: EXIT_FAILED,
    e.InvalidRequest: EXIT_FAILED,
    e.BeyondLatestCheckpoint: EXIT_FAILED,
    e.EventInvalid: EXIT_FAILED,
    e.WriterSignatureInvalid: EXIT_FAILED,
    e.ExportInvalid: EXIT_FAILED,
    e.PayloadTooLarge: EXIT_FAILED,
    e.TrailTooLarge: EXIT_FAILED,
    e.Conflict: EXIT_FAILED,
    e.IdempotencyConflict: EXIT_FAILED,
    e.LogExists: EXIT_FAILED,
    e.KeyStateConflict: EXIT_FAILED,
    e.ScopeErased: EXIT_FAILED,
    e.HoldActive: EXIT_FAILED,
    e.RequestNotPending: EXIT_FAILED,
    e.NotFound: EXIT_FAILED,
    e.Unauthenticated: EXIT_FAILED,
    e.TooManyAuthFailures: EXIT_FAILED,
    e.Forbidden: EXIT_FAILED,
    e.TwoPersonRule: EXIT_FAILED,
    e.StoreUnavailable: EXIT_FAILED,
    e.LogMoved: EXIT_FAILED,
    e.KeyProviderUnavailable: EXIT_FAILED,
    e.ConfigurationError: EXIT_FAILED,
    e.WorkerFailed: EXIT_FAILED,
    # Stored data that does not check out (a head row that disagrees with its checkpoint, an
    # anchor that forks): the one failure that is a finding about the data.
    e.IntegrityFailure: EXIT_INTEGRITY,
    e.CheckpointFork: EXIT_INTEGRITY,
}


def exit_code_for(error: type[e.LedgerError]) -> int:
    """The code of ``error``'s class, else of its nearest listed ancestor."""
    for cls in error.__mro__:
        code = EXIT_CODES.get(cls)
        if code is not None:
            return code
    raise AssertionError(f"{error.__name__} is not a LedgerError")


def message_for(error: e.LedgerError) -> str:
    """What the command prints to stderr: the precise reason (the operator is the reader)."""
    if isinstance(error, e.StoreUnavailable):
        return f"database unavailable: {error}"
    if isinstance(error, e.ClientError | e.ConfigurationError):
        return str(error)
    return f"{type(error).__name__}: {error}"
