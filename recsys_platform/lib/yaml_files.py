"""The platform's YAML files (GA4 setup, taxonomy, Personalize setup, product DB contracts), parsed by
libyaml's C parser, which PyYAML's wheels include: the pure-Python parser took ~85 ms of every load of the
code location (each run worker and step process) for four small files."""

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str):
    """What `yaml.safe_load` returns for `text`: plain YAML types only, no arbitrary objects."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
