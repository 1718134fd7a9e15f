"""What a person reads about a run: stats, info and the review gallery."""
