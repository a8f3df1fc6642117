"""What an operator reads about the results: figures computed from the store (docs/analytics.md)."""
