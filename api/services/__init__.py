"""What the routers do, as keyword-only functions over a session or the database."""
