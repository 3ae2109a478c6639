"""ZeroGen's filter rules (spec A.5) on crafted generations, one rule at a time."""
from __future__ import annotations

from arkbench.papers.zerogen import filters as F


def test_rule2_cut_before_first_quote():
    assert F.cut_text('a fine film indeed" and more "text') == "a fine film indeed"


def test_rule2_else_before_newline():
    assert F.cut_text("first line here\nsecond line. more") == "first line here"


def test_rule2_else_drop_after_last_period():
    assert F.cut_text("One sentence. Two sentences. and a dangling") == "One sentence. Two sentences."


def test_rule2_else_discard():
    assert F.cut_text("no terminator at all") is None


def test_rule1_qnli_question_cut_after_first_question_mark():
    assert F.cut_text('What is it? Where" is it?', question=True) == "What is it?"
    assert F.cut_text('A statement." nothing', question=True) is None   # no "?" -> discarded


def test_rule3_min_words():
    s = F.FilterStats()
    assert F.process_text('one two three four five six seven eight nine ten"', 10, stats=s) is not None
    assert F.process_text('one two three four five six seven eight nine"', 10, stats=s) is None
    assert F.process_text("no cut here", 1, stats=s) is None
    assert (s.raw, s.too_short, s.no_cut) == (3, 1, 1)


def test_rule4_batch_dedup_and_copy_of_context():
    s = F.FilterStats()
    batch = [{"C": "t", "X": "a b", "Y": "positive"}, {"C": "t", "X": "a b", "Y": "positive"},
             {"C": "t", "X": "a b", "Y": "negative"}, {"C": "t", "X": "t", "Y": "positive"}]
    out = F.dedup_batch(batch, s)
    assert out == [batch[0], batch[2]]               # same text, other label: kept (it is another (C,X,Y))
    assert (s.duplicate, s.copies_context) == (1, 1)


def test_duplicates_across_batches_survive_unless_global_dedup():
    """ZeroGen's quirk: only within-batch de-duplication; dedup_global is our option."""
    a = [{"C": "t", "X": "same", "Y": "positive"}]
    rows = F.dedup_batch(a) + F.dedup_batch(list(a))
    assert len(rows) == 2
    s = F.FilterStats()
    assert len(F.dedup_global(rows, stats=s)) == 1 and s.duplicate_global == 1


def test_qa_question_rules():
    s = F.FilterStats()
    assert F.cut_question("Who wrote the first book of it? yes", "Tolkien", 5, s) == "Who wrote the first book of it?"
    assert F.cut_question("Did Tolkien write the book about it?", "tolkien", 5, s) is None   # contains answer
    assert F.cut_question("Who wrote it?", "Tolkien", 5, s) is None                          # 3 words
    assert F.cut_question("No question mark here at all", "x", 1, s) is None
    assert (s.contains_answer, s.too_short, s.no_cut) == (1, 1, 1)


def test_prompting_answer_cut():
    assert F.cut_answer('Paris" is the answer') == "Paris"
    assert F.cut_answer("Paris. It is") == "Paris"
    assert F.cut_answer("Paris") == ""
