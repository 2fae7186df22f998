"""The Personalize chain: lake snapshots -> dataset import -> solution version -> gated campaign, plus the
v1-vs-v2 experiment. Resource keys: `warehouse`, `lake`, `personalize`."""
