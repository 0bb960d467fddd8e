"""Between processes: the protocol, the sans-I/O master and its process, dispatch, launch, keys."""
