"""Data: sources, pattern library, watchlist entities and the demo site's pages."""
