"""nlp: text in, prepared text out, for Chinese, English and mixed customer verbatims.

Language detection, normalisation with offsets back to the original, PII masking, segmentation,
clauses and keyphrases. Importing this package is cheap: jieba, OpenCC, lingua, phonenumbers and
scikit-learn are imported on first use, and torch never.
"""

from __future__ import annotations

from nlp.clauses import Clause, split_clauses
from nlp.keywords import KeyphraseExtractor, extract_keyphrases
from nlp.lang import Lang, LanguageDetector, detect_language
from nlp.normalize import Normalized, Normalizer, decode_text, normalize
from nlp.pii import Masked, PiiKind, PiiSpan, find_pii, mask_pii
from nlp.prepare import MAX_CHARS, PreparedText, prepare, validate_text
from nlp.segment import Segmenter, get_default_segmenter

__all__ = [
    "MAX_CHARS",
    "Clause",
    "KeyphraseExtractor",
    "Lang",
    "LanguageDetector",
    "Masked",
    "Normalized",
    "Normalizer",
    "PiiKind",
    "PiiSpan",
    "PreparedText",
    "Segmenter",
    "decode_text",
    "detect_language",
    "extract_keyphrases",
    "find_pii",
    "get_default_segmenter",
    "mask_pii",
    "normalize",
    "prepare",
    "split_clauses",
    "validate_text",
]
