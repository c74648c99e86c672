"""Pure models shared by every part of sgmesh: events, settings, addresses, rules and errors."""
