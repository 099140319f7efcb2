"""One module per source: where it comes from, its layout, its labels, licence and citation.

Installed as ``imagenet_hard.builders``; every module here is imported when the source registry is
first read, and registers its builder with ``@register_source``.
"""
