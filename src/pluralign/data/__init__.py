"""Preference data: records, readers/writers, splits, task sampling, simulated users."""

from .io import from_hf_dataset, read_records, to_hf_dataset, write_records
from .records import PreferenceRecord, Problem, RecordValidationError, parse_record
from .splits import by_split, split_records
from .tasks import TaskBatch, TaskItem, TaskSampler, collate

__all__ = [
    "PreferenceRecord", "Problem", "RecordValidationError", "parse_record",
    "read_records", "write_records", "to_hf_dataset", "from_hf_dataset",
    "split_records", "by_split", "TaskSampler", "TaskItem", "TaskBatch", "collate",
]
