"""Tracing a pipeline body, wiring by name, and what is refused at definition time."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import loopstack as ls
from loopstack.errors import Invalid
from loopstack.pipelines import OutputRef, ParamRef, Pipeline, Step
from tests.pipelines import flows


def test_the_body_is_traced_at_definition_into_nodes_in_data_order() -> None:
    graph = flows.training.graph
    assert graph.order == ["load", "split", "train", "evaluate"]
    train = graph.nodes["train"]
    assert train.inputs == {"df": OutputRef("split", "train")}
    assert train.params == {"lr": ParamRef("lr")}
    assert graph.nodes["evaluate"].inputs["df"] == OutputRef("split", "test")
    assert graph.upstream("evaluate") == ["split", "train"]
    assert flows.training.defaults == {"rows": 10, "lr": 0.1}


def test_a_step_outside_a_pipeline_body_is_the_plain_function() -> None:
    assert isinstance(flows.load, Step)
    frame = flows.load(rows=3)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 3


def test_a_step_called_twice_gets_a_unique_node_name() -> None:
    @ls.step
    def add(a: int, b: int = 1) -> int:
        return a + b

    @ls.pipeline
    def twice(start: int = 0):
        add(add(start), b=2)

    assert twice.graph.order == ["add", "add_2"]
    assert twice.graph.nodes["add_2"].inputs == {"a": OutputRef("add")}
    assert twice.graph.nodes["add_2"].params == {"b": 2}


def test_decorators_take_options_or_none() -> None:
    @ls.step(name="fetch", retries=3, backoff_s=0.5, timeout_s=9, cache=False)
    def f() -> int:
        return 1

    @ls.pipeline(name="custom")
    def p():
        f()

    assert (f.name, f.retries, f.backoff_s, f.timeout_s, f.cache) == ("fetch", 3, 0.5, 9, False)
    assert p.name == "custom" and p.graph.order == ["fetch"]


def test_render_text_fits_80_columns_and_mermaid_draws_each_edge() -> None:
    text = flows.training.graph.render_text()
    lines = text.splitlines()
    assert [line.split()[1] for line in lines] == ["load", "split", "train", "evaluate"]
    assert all(len(line) <= 80 for line in lines)
    assert "df=split.train" in lines[2]
    mermaid = flows.training.graph.to_mermaid()
    assert mermaid.startswith("flowchart TD")
    assert "n_split -->|test -> df| n_evaluate" in mermaid
    nodes = flows.training.graph.to_dict()["nodes"]
    assert nodes[0]["step"] == "tests.pipelines.flows:load"
    assert nodes[0]["params"] == {"rows": {"$param": "rows"}}


def test_from_steps_wires_by_parameter_name_and_makes_the_rest_params() -> None:
    @ls.step
    def raw(n: int = 4) -> list[int]:
        return list(range(n))

    @ls.step
    def doubled(raw: list[int]) -> list[int]:
        return [2 * v for v in raw]

    pipe = Pipeline.from_steps("etl", [doubled, raw])
    assert pipe.graph.order == ["raw", "doubled"]
    assert pipe.graph.nodes["doubled"].inputs == {"raw": OutputRef("raw")}
    assert pipe.defaults == {"n": 4}


def test_from_steps_refuses_a_cycle_naming_it() -> None:
    @ls.step
    def a(b: int) -> int:
        return b

    @ls.step
    def b(a: int) -> int:
        return a

    with pytest.raises(Invalid, match=r"cycle: a -> b -> a"):
        Pipeline.from_steps("loop", [a, b])


def test_an_output_type_that_does_not_fit_its_consumer_is_refused() -> None:
    @ls.step
    def count() -> int:
        return 3

    @ls.step
    def describe(frame: pd.DataFrame) -> str:
        return str(frame)

    with pytest.raises(Invalid) as info:

        @ls.pipeline
        def mismatched():
            describe(count())

    message = str(info.value)
    for part in ("'describe'", "'frame'", "DataFrame", "'count'", "int"):
        assert part in message


def test_unannotated_any_and_int_for_float_fit() -> None:
    @ls.step
    def anything():
        return 1

    @ls.step
    def whole() -> int:
        return 1

    @ls.step
    def takes(x: Any, y: float, z) -> float:  # noqa: ANN001
        return y

    @ls.pipeline
    def fine():
        takes(anything(), whole(), whole())

    assert len(fine.graph) == 4


def test_multi_output_types_are_checked_per_output() -> None:
    @ls.step(outputs=("a", "b"))
    def pair() -> tuple[int, str]:
        return 1, "x"

    @ls.step
    def needs_int(v: int) -> int:
        return v

    with pytest.raises(Invalid, match="'pair' returns str as its output 'b'"):

        @ls.pipeline
        def wrong():
            _, second = pair()
            needs_int(second)


@pytest.mark.parametrize(
    "value", [object(), {1: "int key"}, float("nan"), pd.DataFrame({"a": [1]})]
)
def test_non_json_arguments_and_defaults_are_refused(value: Any) -> None:
    @ls.step
    def use(v: Any) -> int:
        return 1

    with pytest.raises(Invalid, match="must be a JSON value"):

        @ls.pipeline
        def literal():
            use(value)

    with pytest.raises(Invalid, match="must be a JSON value"):

        @ls.pipeline
        def default(v: Any = value):
            use(v)


def test_misusing_placeholders_in_the_body_says_how() -> None:
    with pytest.raises(Invalid, match="one value"):

        @ls.pipeline
        def unpack():
            first, second = flows.load()

    with pytest.raises(Invalid, match="no value while the pipeline is traced"):

        @ls.pipeline
        def branch(rows: int = 1):
            if rows:
                flows.load(rows=rows)

    with pytest.raises(Invalid, match="instead of formatting it"):

        @ls.pipeline
        def formatted(name: str = "x"):
            flows.total(f"{name}-suffix")

    with pytest.raises(Invalid, match="instead of formatting it"):

        @ls.pipeline
        def formatted_output():
            flows.total(str(flows.source()))

    with pytest.raises(Invalid, match="wrong arguments"):

        @ls.pipeline
        def extra():
            flows.load(1, 2)

    with pytest.raises(Invalid, match="calls no step"):

        @ls.pipeline
        def empty():
            return None


def test_bad_step_options_are_refused() -> None:
    with pytest.raises(Invalid, match="'retries'"):
        ls.step(retries=-1)(lambda: 1)
    with pytest.raises(Invalid, match="'timeout_s'"):
        ls.step(timeout_s=0)(lambda: 1)
    with pytest.raises(Invalid, match="outputs"):
        ls.step(outputs=("a", "a"))(lambda: 1)


def test_unknown_or_missing_pipeline_params_are_refused() -> None:
    with pytest.raises(Invalid, match="unknown"):
        flows.training.bind({"epochs": 3})
    with pytest.raises(Invalid, match="JSON"):
        flows.training.bind({"rows": object()})
    with pytest.raises(Invalid, match="needs the params"):
        flows.flaky_flow.bind({})


def test_a_step_pickles_by_reference() -> None:
    import pickle

    assert pickle.loads(pickle.dumps(flows.train)) is flows.train


def test_render_text_cuts_long_lines_at_80_columns() -> None:
    @ls.step(name="a_step_with_a_rather_long_name_indeed")
    def long(
        first_input_parameter: int = 1, second_input_parameter: int = 2, third: int = 3
    ) -> int:
        return 1

    @ls.pipeline
    def wide(first_input_parameter: int = 1, second_input_parameter: int = 2, third: int = 3):
        long(first_input_parameter, second_input_parameter, third)

    (line,) = wide.graph.render_text().splitlines()
    assert len(line) == 80 and line.endswith("...")


def test_importing_pipelines_loads_no_dataframe_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, loopstack.pipelines; print(','.join(m for m in "
        "('pandas', 'pyarrow', 'numpy', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
