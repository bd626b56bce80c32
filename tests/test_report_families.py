"""Every run lands in its approach family, and a distilled student names its teacher, for the report's tables."""

from llmclf.analysis.report import approach_family, teacher_run_id


def test_families():
    assert approach_family("10_embedding_head", {}) == "embedding head"
    assert approach_family("20_instruction_tuning", {"zero_shot": True}) == "zero-shot"
    assert approach_family("20_instruction_tuning", {"zero_shot": False}) == "instruction tuning"
    assert approach_family("30_baselines", {"baseline": "tfidf"}) == "TF-IDF"
    assert approach_family("30_baselines", {"baseline": "frozen"}) == "frozen embeddings"
    assert approach_family("40_distillation", {}, {"teacher": {"run_id": "10_embedding_head-abc"}}) == \
        "distilled student"


def test_a_student_names_its_teacher_as_40_distillation_records_it():
    assert teacher_run_id({"teacher": {"run_id": "10_embedding_head-abc", "label": "head"}}) == "10_embedding_head-abc"
    assert teacher_run_id({"teacher_run_id": "x"}) == "x"
    assert teacher_run_id({}) is None
