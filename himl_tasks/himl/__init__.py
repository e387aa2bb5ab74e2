"""hi-ml's user contract: its functions, names and semantics, on any backend."""
