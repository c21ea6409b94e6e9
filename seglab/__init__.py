"""seglab: compact, tested helpers behind the semantic-segmentation teaching notebooks."""
from seglab.errors import SeglabError

__version__ = "0.1.0"
__all__ = ["SeglabError", "__version__"]
