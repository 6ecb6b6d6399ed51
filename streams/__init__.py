"""The ceasefire-violation monitor's stream processing service."""
