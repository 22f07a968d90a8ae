"""Documents store, chunking, embeddings, vector index, patterns, detection and search."""
