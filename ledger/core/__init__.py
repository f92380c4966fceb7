"""Pure core: bytes in, bytes out. No database, clock, logging or settings below this line."""
