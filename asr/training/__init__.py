"""Training: what a run reads (`splits`; feature `store`s and their `store_loader`), the run
itself (`train`), its `callbacks` and `backup`, and the process's `allocator` settings."""
