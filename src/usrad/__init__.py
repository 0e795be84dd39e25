"""usrad: reproducible ultrasound radiomics for axillary lymph node metastasis prediction."""

__version__ = "0.1.0"
