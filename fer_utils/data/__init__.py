"""Data stage: FER2013 files in, checked arrays out; FER+ votes, a synthetic stand-in, EDA checks,
class weights and the review file of corrected labels.

=================  ====================================================================
module             job
=================  ====================================================================
``dataset``        :class:`FERData` and :class:`FERDataError` (file, row, field); split names
``csv_reader``     the FER2013 CSV reader (gzip, header, rows, pixels)
``loading``        :func:`load_dataset`: CSV, ``icml_face_data.csv`` or image folder, cached
``ferplus``        FER+ annotator votes joined to FER2013 rows by position; their labels
``synthetic``      procedurally drawn FER2013-format faces (the offline default data set)
``face_drawing``   one synthetic face drawn from its expression and appearance
``eda``            duplicate groups, blank images, FER vs FER+ agreement
``class_weights``  class weights from the Training split, saved as JSON
``review``         the review file: flags and corrected labels per face
=================  ====================================================================

``python -m fer_utils.data FILE`` checks a download; ``python -m fer_utils.data synthetic [PATH]``
writes the synthetic set.
"""

from fer_utils.data.class_weights import (
    ClassWeightsError,
    class_counts,
    class_weights_from_data,
    compute_class_weights,
    load_class_weights,
    read_class_weights,
    save_class_weights,
    weights_table,
)
from fer_utils.data.dataset import (
    CANONICAL_MD5,
    IMAGE_SUFFIXES,
    FERData,
    FERDataError,
    make_data,
    split_sort_key,
)
from fer_utils.data.eda import (
    duplicate_groups,
    duplicate_summary,
    ferplus_agreement,
    ferplus_confusion,
    image_keys,
    not_a_face,
    uniform_images,
)
from fer_utils.data.ferplus import (
    FERPLUS_CLASS_NAMES,
    FERPLUS_COLUMNS,
    align_votes,
    ferplus_distribution,
    ferplus_majority_labels,
    ferplus_plurality,
    read_ferplus,
    vote_shares,
)
from fer_utils.data.loading import load_dataset, read_fer2013
from fer_utils.data.review import apply_review, corrections, from_table, load_review, save_review
from fer_utils.data.synthetic import ensure_default_dataset, is_synthetic, make_synthetic_csv

__all__ = [
    "CANONICAL_MD5",
    "FERPLUS_CLASS_NAMES",
    "FERPLUS_COLUMNS",
    "IMAGE_SUFFIXES",
    "ClassWeightsError",
    "FERData",
    "FERDataError",
    "align_votes",
    "apply_review",
    "class_counts",
    "class_weights_from_data",
    "compute_class_weights",
    "corrections",
    "duplicate_groups",
    "duplicate_summary",
    "ensure_default_dataset",
    "ferplus_agreement",
    "ferplus_confusion",
    "ferplus_distribution",
    "ferplus_majority_labels",
    "ferplus_plurality",
    "from_table",
    "image_keys",
    "is_synthetic",
    "load_class_weights",
    "load_dataset",
    "load_review",
    "make_data",
    "make_synthetic_csv",
    "not_a_face",
    "read_class_weights",
    "read_fer2013",
    "read_ferplus",
    "save_class_weights",
    "save_review",
    "split_sort_key",
    "uniform_images",
    "vote_shares",
    "weights_table",
]
