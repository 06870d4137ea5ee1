"""qeval: which precision can we serve this model at without breaking the product?"""

__version__ = "0.1.0"
