"""The embedded default's stand-ins for the cloud: the local Personalize and the GA4 export simulator.
The pipeline reaches them only through resources and wire protocols, never by import."""
