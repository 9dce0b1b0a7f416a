"""Machine translation task: data (joint SentencePiece, token batching) and BLEU.

Public API:
    TranslationDataConfig, TranslationData   - corpus directory -> tokenizer, encoded splits, batches
    TokenBatches, TranslationBatch            - resumable, shardable token-budget batches
    SentencePieceTokenizer, build_tokenizer   - joint vocabulary; PAD_ID=0, BOS_ID=1, EOS_ID=2, UNK_ID=3
    corpus_bleu, tokenized_bleu, BleuResult   - sacreBLEU and HAT-style tokenized BLEU
"""

from mixnas.families.transformer.task.batching import TokenBatches, TranslationBatch, collate
from mixnas.families.transformer.task.bleu import BleuResult, corpus_bleu, split_compounds, tokenized_bleu
from mixnas.families.transformer.task.corpus import read_lines, read_parallel
from mixnas.families.transformer.task.data import EncodedSplit, TranslationData, TranslationDataConfig, default_cache_dir
from mixnas.families.transformer.task.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    SentencePieceTokenizer,
    build_tokenizer,
)

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "UNK_ID",
    "BleuResult",
    "EncodedSplit",
    "SentencePieceTokenizer",
    "TokenBatches",
    "TranslationBatch",
    "TranslationData",
    "TranslationDataConfig",
    "build_tokenizer",
    "collate",
    "corpus_bleu",
    "default_cache_dir",
    "read_lines",
    "read_parallel",
    "split_compounds",
    "tokenized_bleu",
]
