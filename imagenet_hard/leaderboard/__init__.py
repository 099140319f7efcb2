"""The leaderboard (being written)."""
