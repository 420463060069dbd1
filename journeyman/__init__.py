"""Journeyman: durable customer journeys on Temporal."""
