"""Reference submissions for `imhard score`, one file each.

Installed as ``imagenet_hard.submissions`` so the demo and `imhard bench score` find the offline
EfficientNet-Lite0 submission from a wheel too. Nothing here is imported: each file is run by the
scoring harness in its own process.
"""
