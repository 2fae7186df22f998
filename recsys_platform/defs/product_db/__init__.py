"""The shop's product database as it lands in the warehouse (a Datastream replica in production): its
tables as external assets, and the contract that maps the replica's names and types onto what the
platform reads."""
