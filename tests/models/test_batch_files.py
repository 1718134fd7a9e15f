"""Batch input files stay within the Batch API's limits (50,000 requests and 200 MB per file):
at MIS scale the base64 images reach the size limit long before the line limit."""

from __future__ import annotations

from mis_data.models.batch import MAX_BYTES, MAX_LINES, chunks


def test_a_10000_request_stage_with_images_is_split_by_size() -> None:
    line = b"x" * 40_000  # one request with two ~20 KB base64 images (the same bytes: cheap)
    lines = [(f"k{i}", line) for i in range(10_000)]
    files = chunks(lines)
    assert len(files) == 3  # 400 MB of requests in files of at most 190 MB
    assert all(sum(len(data) for _, data in file) <= MAX_BYTES for file in files)
    assert [key for file in files for key, _ in file] == [key for key, _ in lines]  # all, in order


def test_many_small_requests_are_split_by_count() -> None:
    lines = [(f"k{i}", b"{}\n") for i in range(120_000)]
    files = chunks(lines)
    assert [len(file) for file in files] == [MAX_LINES, MAX_LINES, 20_000]


def test_one_file_when_everything_fits() -> None:
    assert len(chunks([(f"k{i}", b"{}\n") for i in range(10_000)])) == 1
