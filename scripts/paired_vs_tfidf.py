"""Fine-tuned NSMC models against TF-IDF + LR on the same test reviews, paired.

    python scripts/paired_vs_tfidf.py NSMC_DIR PREDICTIONS.jsonl...

Each PREDICTIONS file is `hanlm predict` output on ratings_test.txt. The comparison is the one
`hanlm study --full-nsmc` makes (`hanlm.study.full_nsmc`): TF-IDF + LR fitted on all of
ratings_train.txt, the reviews only one of the two gets right (exact McNemar test) and a
paired bootstrap of the difference over reviews.
"""

import sys
from pathlib import Path

from hanlm.errors import HanlmError
from hanlm.study.full_nsmc import compare_files

if __name__ == "__main__":
    try:
        print("\n".join(compare_files(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])))
    except HanlmError as error:
        sys.exit(str(error))
