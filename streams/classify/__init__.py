"""Where a report is classified: zone (point in polygon), place (gazetteer), party
codes (aliases), severity and the provision breached. Pure functions over data files
that users can replace (CEASEFIRE_ZONES, CEASEFIRE_GAZETTEER)."""
