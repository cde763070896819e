"""The project's own pre-screening models (registry kind ``torch``): chest film triage and head
CT haemorrhage detection, both small MONAI DenseNets trained by ``yunying ai train`` on the
phantoms ``datasets/lesions.py`` generates. See their cards in ``ai_models/cards``."""
