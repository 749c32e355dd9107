"""The language: the JSON Schema, YAML with positions, checking, sweep expansion and the typed
resolved run every stage reads."""
