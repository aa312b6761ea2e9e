"""The charging engine: money, rating, balances and reservations, sessions, journal."""
