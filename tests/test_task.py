"""Tests of Task, Struct, TaskMetadata, logging and timing (lsst-utils' own, through the framework)."""

from __future__ import annotations

import datetime
import logging
import pickle

import lsst.utils.logging
import lsst.utils.timer
import pytest

from lsst.meas.extensions.madness.framework import (
    TRACE,
    VERBOSE,
    Config,
    ConfigurableField,
    Field,
    FieldValidationError,
    Struct,
    StructItemError,
    Task,
    TaskError,
    TaskMetadata,
    getLogger,
    timeMethod,
)

# --------------------------------------------------------------------------
# A three-level task hierarchy: top -> deblend -> fit.


class FitConfig(Config):
    maxIter: int = Field(300, description="Maximum number of iterations.", ge=1)
    bands: list[str] = Field(default_factory=lambda: ["g", "r"], description="Bands.")


class FitTask(Task):
    ConfigClass = FitConfig
    _DefaultName = "fit"

    def __init__(self, *, scale: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = scale

    @timeMethod
    def run(self, x: float) -> Struct:
        self.log.trace("iteration detail %d", 1)
        self.log.verbose("fitted %s", x)
        return Struct(value=x * self.scale, nIter=self.config.maxIter)

    @timeMethod
    def explode(self) -> None:
        raise TaskError("no peaks")


class ScaledFitTask(FitTask):
    """Same ConfigClass as FitTask."""


class OtherFitConfig(Config):
    nSteps: int = Field(5, description="Number of steps.")


class OtherFitTask(Task):
    ConfigClass = OtherFitConfig
    _DefaultName = "otherFit"

    def __init__(self, *, scale: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = scale


class DeblendConfig(Config):
    minFlux: float = Field(0.0, description="Minimum flux.")
    fit: ConfigurableField = ConfigurableField(doc="Fitter.", target=FitTask)


class DeblendTask(Task):
    ConfigClass = DeblendConfig
    _DefaultName = "deblend"

    def __init__(self, *, fitScale: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.makeSubtask("fit", scale=fitScale)

    def run(self, x: float) -> Struct:
        with self.timer("fitting"):
            result = self.fit.run(x)
        return result


class TopConfig(Config):
    deblend: ConfigurableField = ConfigurableField(doc="Deblender.", target=DeblendTask)


class TopTask(Task):
    ConfigClass = TopConfig
    _DefaultName = "top"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.makeSubtask("deblend", fitScale=2.0)


# --------------------------------------------------------------------------
# Naming and the task hierarchy.


def test_names_three_levels() -> None:
    top = TopTask()
    assert top.getName() == "top"
    assert top.getFullName() == "top"
    assert top.deblend.getName() == "deblend"
    assert top.deblend.getFullName() == "top.deblend"
    assert top.deblend.fit.getName() == "fit"
    assert top.deblend.fit.getFullName() == "top.deblend.fit"
    assert TopTask(name="custom").deblend.fit.getFullName() == "custom.deblend.fit"


def test_task_dict_is_shared() -> None:
    top = TopTask()
    taskDict = top.getTaskDict()
    assert set(taskDict) == {"top", "top.deblend", "top.deblend.fit"}
    assert taskDict["top"] is top
    assert taskDict["top.deblend"] is top.deblend
    assert taskDict["top.deblend.fit"] is top.deblend.fit
    assert top.deblend.fit.getTaskDict() == taskDict
    taskDict.clear()
    assert len(top.getTaskDict()) == 3


def test_make_subtask_passes_kwargs_and_config() -> None:
    config = TopConfig()
    config.deblend.fit.maxIter = 4
    top = TopTask(config=config)
    assert isinstance(top.deblend.fit, FitTask)
    assert top.deblend.fit.scale == 2.0
    assert top.deblend.fit.config is config.deblend.fit.value
    assert top.deblend.fit.run(3.0).nIter == 4
    assert top.deblend.fit.run(3.0).value == 6.0
    assert top.deblend._parentTask is top


def test_make_subtask_unknown_field() -> None:
    top = TopTask()
    with pytest.raises(KeyError, match="does not have field 'missing'"):
        top.makeSubtask("missing")


def test_retarget_changes_subtask_class() -> None:
    config = TopConfig()
    config.deblend.fit.maxIter = 7
    config.deblend.fit.retarget(ScaledFitTask)
    top = TopTask(config=config)
    assert type(top.deblend.fit) is ScaledFitTask
    assert top.deblend.fit.config.maxIter == 7

    config = TopConfig()
    config.deblend.fit.maxIter = 7
    config.deblend.fit.retarget(OtherFitTask)
    assert config.deblend.fit.value == OtherFitConfig()
    top = TopTask(config=config)
    assert type(top.deblend.fit) is OtherFitTask
    assert top.deblend.fit.config.nSteps == 5
    assert top.deblend.fit.scale == 2.0


def test_missing_config_class_or_default_name() -> None:
    class NoConfigTask(Task):
        _DefaultName = "noConfig"

    class NoNameTask(Task):
        ConfigClass = FitConfig

    with pytest.raises(RuntimeError, match="ConfigClass"):
        NoConfigTask()
    assert NoConfigTask(config=FitConfig()).getName() == "noConfig"
    with pytest.raises(RuntimeError, match="_DefaultName"):
        NoNameTask()
    assert NoNameTask(name="named").getFullName() == "named"
    with pytest.raises(RuntimeError, match="name is required for a subtask"):
        FitTask(parentTask=TopTask())


def test_config_type_is_checked_and_validated() -> None:
    with pytest.raises(TypeError, match="needs a FitConfig"):
        FitTask(config={"maxIter": 3})
    config = FitConfig()
    config.bands.append(3)
    with pytest.raises(FieldValidationError, match=r"FitConfig\.bands\[2\] = 3 is invalid"):
        FitTask(config=config)


def test_config_is_not_frozen_by_task() -> None:
    top = TopTask()
    assert not top.config.frozen
    top.config.deblend.minFlux = 1.0


def test_task_pickles() -> None:
    task = FitTask(config=FitConfig(maxIter=9))
    restored = pickle.loads(pickle.dumps(task))
    assert type(restored) is FitTask
    assert restored.config.maxIter == 9
    assert restored.getFullName() == "fit"


# --------------------------------------------------------------------------
# Logging.


def test_logging_and_timing_are_lsst_utils() -> None:
    """The framework re-exports lsst-utils' loggers and timers rather than carrying copies."""
    import lsst.meas.extensions.madness as madness
    from lsst.meas.extensions.madness import framework

    for name in ("TRACE", "VERBOSE", "LsstLogAdapter", "getLogger"):
        assert getattr(framework, name) is getattr(lsst.utils.logging, name), name
    for name in ("timeMethod", "logInfo"):
        assert getattr(framework, name) is getattr(lsst.utils.timer, name), name
    assert madness.timeMethod is lsst.utils.timer.timeMethod
    top = TopTask()
    assert all(type(task.log) is lsst.utils.logging.LsstLogAdapter for task in top.getTaskDict().values())


def test_log_hierarchy() -> None:
    top = TopTask()
    # As in pipe_base, top-level names get the root package as prefix.
    assert top.log.name == TopTask.__module__.split(".")[0] + ".top"
    assert top.deblend.log.name == top.log.name + ".deblend"
    assert top.deblend.fit.log.name == top.log.name + ".deblend.fit"
    parent = logging.getLogger("lsst.pipeline")
    assert FitTask(log=parent).log.name == "lsst.pipeline.fit"


def test_trace_and_verbose_levels(caplog: pytest.LogCaptureFixture) -> None:
    assert TRACE == 5 and VERBOSE == 15
    assert logging.getLevelName(TRACE) == "TRACE"
    assert logging.getLevelName(VERBOSE) == "VERBOSE"
    task = FitTask()
    assert task.log.TRACE == 5 and task.log.VERBOSE == 15

    with caplog.at_level(VERBOSE, logger=task.log.name):
        task.run(1.5)
    messages = {(r.levelno, r.getMessage()) for r in caplog.records if r.name == task.log.name}
    assert (VERBOSE, "fitted 1.5") in messages
    assert not any(level == TRACE for level, _ in messages)
    verboseRecord = next(r for r in caplog.records if r.levelno == VERBOSE)
    assert verboseRecord.levelname == "VERBOSE"
    assert verboseRecord.funcName == "run"

    caplog.clear()
    with caplog.at_level(TRACE, logger=task.log.name):
        task.run(1.5)
    levels = [r.levelno for r in caplog.records if r.name == task.log.name]
    assert levels == [TRACE, VERBOSE]
    traceRecord = next(r for r in caplog.records if r.levelno == TRACE)
    assert traceRecord.getMessage() == "iteration detail 1"
    assert traceRecord.levelname == "TRACE"


def test_standard_log_methods(caplog: pytest.LogCaptureFixture) -> None:
    log = getLogger("lsst.madnessTest")
    with caplog.at_level(logging.DEBUG, logger="lsst.madnessTest"):
        log.debug("d")
        log.info("i %s", "x")
        log.warning("w")
        log.error("e")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("caught")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "d"),
        (logging.INFO, "i x"),
        (logging.WARNING, "w"),
        (logging.ERROR, "e"),
        (logging.ERROR, "caught"),
    ]
    assert caplog.records[-1].exc_info is not None
    assert log.getChild("sub").name == "lsst.madnessTest.sub"
    with log.temporary_log_level(logging.ERROR):
        assert not log.isEnabledFor(logging.WARNING)
    assert log.isEnabledFor(logging.WARNING)


# --------------------------------------------------------------------------
# Timing metadata.

_SUFFIXES = ["CpuTime", "Utc", "UserTime", "SystemTime", "MaxResidentSetSize"]


def test_time_method_records_all_keys() -> None:
    task = FitTask()
    task.run(1.0)
    for phase in ("Start", "End"):
        for suffix in _SUFFIXES:
            assert f"run{phase}{suffix}" in task.metadata, f"run{phase}{suffix}"
    assert task.metadata["runStartCpuTime"] <= task.metadata["runEndCpuTime"]
    assert task.metadata["runStartUserTime"] <= task.metadata["runEndUserTime"]
    assert task.metadata["runEndMaxResidentSetSize"] > 0
    start = datetime.datetime.fromisoformat(task.metadata["runStartUtc"])
    end = datetime.datetime.fromisoformat(task.metadata["runEndUtc"])
    assert start.tzinfo is not None
    assert start <= end


def test_task_metadata_holds_every_item_lsst_utils_writes() -> None:
    """lsst.utils.timer.logInfo writes through ``add`` (not PropertySet's ``addLongLong``), plus the
    ``__version__`` and ``nodeName`` items; TaskMetadata takes all of it and survives JSON."""
    metadata, plain = TaskMetadata(), {}
    lsst.utils.timer.logInfo(None, "stepStart", metadata=metadata)
    lsst.utils.timer.logInfo(None, "stepStart", metadata=plain)  # a dict keeps whatever it is given
    assert set(metadata.names()) == set(plain)
    assert {"stepStartUtc", "stepStartCpuTime", "stepStartMinorPageFaults", "nodeName"} <= set(plain)
    assert metadata["__version__"] == 1 and isinstance(metadata["stepStartMaxResidentSetSize"], int)
    lsst.utils.timer.logInfo(None, "stepStart", metadata=metadata)
    assert len(metadata.getArray("stepStartCpuTime")) == 2
    assert TaskMetadata.model_validate_json(metadata.model_dump_json()) == metadata


def test_time_method_appends_per_call() -> None:
    task = FitTask()
    task.run(1.0)
    task.run(2.0)
    starts = task.metadata.getArray("runStartCpuTime")
    ends = task.metadata.getArray("runEndCpuTime")
    assert len(starts) == len(ends) == 2
    assert starts[0] <= ends[0] <= starts[1] <= ends[1]
    assert task.metadata["runStartCpuTime"] == starts[-1]
    assert len(task.metadata.getArray("runEndUtc")) == 2


def test_time_method_records_end_when_raising() -> None:
    task = FitTask()
    with pytest.raises(TaskError, match="no peaks"):
        task.explode()
    assert "explodeStartCpuTime" in task.metadata
    assert "explodeEndCpuTime" in task.metadata
    assert task.metadata["explodeStartCpuTime"] <= task.metadata["explodeEndCpuTime"]


def test_timer_context_and_full_metadata() -> None:
    top = TopTask()
    top.deblend.run(1.0)
    assert "fittingStartCpuTime" in top.deblend.metadata
    assert "fittingEndUtc" in top.deblend.metadata
    with pytest.raises(ValueError), top.timer("failing"):
        raise ValueError("inside timer")
    assert "failingEndCpuTime" in top.metadata

    full = top.getFullMetadata()
    assert set(full.keys()) == {"top", "top:deblend", "top:deblend:fit"}
    assert "fittingStartCpuTime" in full["top:deblend"]
    assert "runStartCpuTime" in full["top:deblend:fit"]
    assert full["top:deblend:fit.runEndCpuTime"] == top.deblend.fit.metadata["runEndCpuTime"]

    top.emptyMetadata()
    assert len(top.deblend.fit.metadata) == 0
    assert len(top.metadata) == 0


def test_subtasks_keep_metadata_in_their_parents_class() -> None:
    """Under a real lsst.pipe.base parent a subtask's metadata must be that parent's TaskMetadata class
    (pipe_base refuses any other nested in its own); here a subclass stands in for it."""

    class ParentMetadata(TaskMetadata):
        pass

    class ForeignTopTask(Task):
        ConfigClass = TopConfig
        _DefaultName = "top"

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self.metadata = ParentMetadata()
            self.makeSubtask("deblend")

    top = ForeignTopTask()
    assert type(top.deblend.metadata) is ParentMetadata
    assert type(top.deblend.fit.metadata) is ParentMetadata
    top.deblend.run(1.0)
    full = top.getFullMetadata()
    assert type(full) is ParentMetadata and "runStartCpuTime" in full["top:deblend:fit"]
    top.emptyMetadata()
    assert type(top.deblend.fit.metadata) is ParentMetadata and len(top.deblend.fit.metadata) == 0
    assert type(TopTask().deblend.metadata) is TaskMetadata


def test_metadata_is_accepted_by_the_real_pipe_base() -> None:
    """What lsst-utils' timers write into the framework's metadata is what the real pipe_base holds: a
    standalone hierarchy converts into ``lsst.pipe.base.TaskMetadata``, and under a real pipe_base parent the
    framework's subtasks time themselves into pipe_base's own class."""
    pipeBase = pytest.importorskip(
        "lsst.pipe.base", reason="lsst-pipe-base is not installed: pip install -e '.[lsst]' (make install does)")
    from lsst.meas.extensions.madness.framework import to_pex_config

    top = TopTask()
    top.deblend.run(1.0)
    full = top.getFullMetadata()
    converted = pipeBase.TaskMetadata.model_validate_json(full.model_dump_json())
    assert converted.to_dict() == full.to_dict()
    assert converted["top:deblend:fit.runEndCpuTime"] == full["top:deblend:fit.runEndCpuTime"]
    assert pipeBase.TaskMetadata.from_dict(full.to_dict()).to_dict() == full.to_dict()

    class RealTopTask(pipeBase.Task):
        ConfigClass = to_pex_config(TopConfig)
        _DefaultName = "realTop"

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self.makeSubtask("deblend")

    realTop = RealTopTask()
    realTop.deblend.run(1.0)
    realFull = realTop.getFullMetadata()
    assert type(realFull) is pipeBase.TaskMetadata
    assert type(realFull["realTop:deblend:fit"]) is pipeBase.TaskMetadata
    assert {"runStartCpuTime", "runEndUtc", "__version__", "nodeName"} <= set(realFull["realTop:deblend:fit"])
    assert "fittingEndCpuTime" in realFull["realTop:deblend"]


def test_time_method_on_plain_object_with_dict_metadata() -> None:
    class Worker:
        def __init__(self) -> None:
            self.metadata: dict = {}

        @timeMethod
        def work(self) -> int:
            return 1

    worker = Worker()
    worker.work()
    worker.work()
    assert len(worker.metadata["workStartCpuTime"]) == 2


# --------------------------------------------------------------------------
# Struct.


def test_struct_basics() -> None:
    s = Struct(a=1, b="two")
    assert s.a == 1 and s.b == "two"
    assert len(s) == 2
    assert s.getDict() == {"a": 1, "b": "two"}
    s.getDict()["a"] = 5
    assert s.a == 1
    assert repr(s) == "Struct(a=1; b=two)"
    assert s == Struct(a=1, b="two")
    assert s != Struct(a=1)
    assert s != {"a": 1, "b": "two"}


def test_struct_rejects_bad_names() -> None:
    with pytest.raises(ValueError, match="must not begin with __"):
        Struct(__secret=1)
    with pytest.raises(RuntimeError, match="already exists"):
        Struct(copy=1)
    assert issubclass(StructItemError, ValueError)


def test_struct_merge_and_copy() -> None:
    source = Struct(x=1, y=[2], z=3)
    target = Struct(w=0)
    target.mergeItems(source, "x", "y")
    assert target.getDict() == {"w": 0, "x": 1, "y": [2]}
    assert target.y is source.y
    with pytest.raises(StructItemError, match="'x' already exists"):
        target.mergeItems(source, "z", "x")
    assert target.z == 3
    duplicate = target.copy()
    assert duplicate == target and duplicate is not target
    assert duplicate.y is target.y


# --------------------------------------------------------------------------
# TaskMetadata.


def test_task_metadata_semantics() -> None:
    md = TaskMetadata()
    md["a.b.c"] = 3
    md["scalar"] = "text"
    md.add("values", 1.0)
    md.add("values", 2.0)
    assert md["a.b.c"] == 3
    assert isinstance(md["a"], TaskMetadata)
    assert md["a"]["b.c"] == 3
    assert md["values"] == 2.0
    assert md.getArray("values") == [1.0, 2.0]
    assert md.getScalar("values") == 2.0
    assert md.getArray("scalar") == ["text"]
    assert md.names() == {"a", "a.b", "a.b.c", "scalar", "values"}
    assert md.paramNames(topLevelOnly=True) == {"scalar", "values"}
    assert md.to_dict() == {"scalar": "text", "values": [1.0, 2.0], "a": {"b": {"c": 3}}}
    assert "a.b" in md and "a.x" not in md
    assert md.get("missing", 7) == 7
    with pytest.raises(KeyError, match=r"'a\.b\.x' not found"):
        md["a.b.x"]
    with pytest.raises(ValueError, match="Type mismatch"):
        md.add("values", "three")
    md.add("scalar", "more")
    assert md.getArray("scalar") == ["text", "more"]
    del md["a.b"]
    assert "a.b" not in md
    assert TaskMetadata.from_dict(md.to_dict()).to_dict() == md.to_dict()
    assert TaskMetadata.model_validate_json(md.model_dump_json()).to_dict() == md.to_dict()
