"""`Task`: base class of processing steps, mirroring ``lsst.pipe.base.Task``."""

from __future__ import annotations

__all__ = ["Task", "TaskError"]

import contextlib
import logging
import sys
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from lsst.utils.logging import LsstLogAdapter, getLogger
from lsst.utils.timer import logInfo

from .config import Config, ConfigurableField, ConfigurableInstance
from .metadata import TaskMetadata

if TYPE_CHECKING:
    import lsst.pex.config


def _metadataClass(parentTask: Any | None) -> type:
    """The metadata class of a task whose parent is ``parentTask``.

    Parameters
    ----------
    parentTask : `Task` or ``lsst.pipe.base.Task`` or `None`
        The parent task; `None` for a top-level task.

    Returns
    -------
    metadataClass : `type`
        The class of the parent's metadata (``lsst.pipe.base.TaskMetadata``
        under a real pipe_base parent), or `TaskMetadata` for a top-level
        task.
    """
    parentMetadata = getattr(parentTask, "metadata", None)
    return TaskMetadata if parentMetadata is None else type(parentMetadata)


class TaskError(Exception):
    """Report an error for which a traceback is not useful.

    For example: the deblender is asked to run on a blend with no peaks.
    """


class Task:
    r"""Base class for data processing tasks.

    Parameters
    ----------
    config : `Config` or `lsst.pex.config.Config`, optional
        Configuration, an instance of ``ConfigClass``. An
        ``lsst.pex.config.Config`` (e.g. one made from
        ``to_pex_config(ConfigClass)``) is converted with
        ``ConfigClass.fromPexConfig``. If `None`: ``parentTask.config.<name>``
        for a subtask, ``ConfigClass()`` otherwise.
    name : `str`, optional
        Brief name; required for a subtask, ``_DefaultName`` if omitted for
        a top-level task.
    parentTask : `Task`, optional
        Parent task; `None` for a top-level task. A ``lsst.pipe.base.Task``
        works too (it has the same private interface).
    log : `logging.Logger` or `lsst.utils.logging.LsstLogAdapter`, optional
        For a top-level task, the log whose child the task's log is. Ignored
        for subtasks, whose log is ``parentTask.log.getChild(name)``.

    Raises
    ------
    RuntimeError
        Raised if ``name`` is missing and there is no ``_DefaultName``, if
        ``config`` is missing and there is no ``ConfigClass``, or if a
        subtask has no ``name``.
    TypeError
        Raised if ``config`` is of an unusable type.
    FieldValidationError
        Raised if ``config.validate()`` fails.

    Notes
    -----
    Subclasses set the class attributes ``ConfigClass`` (a `Config`
    subclass) and ``_DefaultName``. Useful attributes:

    - ``config``: the task's config (not frozen by the task);
    - ``log``: an `lsst.utils.logging.LsstLogAdapter` (lsst-utils' own, as
      in ``lsst.pipe.base``) with ``trace`` and ``verbose``;
    - ``metadata``: a `TaskMetadata` filled by `lsst.utils.timer.timeMethod`
      and `timer`
      (for a subtask, an instance of its parent's metadata class:
      ``lsst.pipe.base.TaskMetadata`` under a real ``PipelineTask``).

    Unlike current ``lsst.pipe.base``, `getTaskDict` returns the tasks
    themselves rather than weak references (they are stored as weak
    references, so a parent from ``lsst.pipe.base`` can share the dict).

    Examples
    --------
    >>> from lsst.meas.extensions.madness.framework import (
    ...     Config, ConfigurableField, Field, Struct, Task, timeMethod)
    >>> class FitConfig(Config):
    ...     maxIter: int = Field(300, description="Maximum number of iterations.", ge=1)
    >>> class FitTask(Task):
    ...     ConfigClass = FitConfig
    ...     _DefaultName = "fit"
    ...     @timeMethod
    ...     def run(self, x):
    ...         return Struct(value=x * self.config.maxIter)
    >>> class TopConfig(Config):
    ...     fit: ConfigurableField = ConfigurableField(doc="Fitter.", target=FitTask)
    >>> class TopTask(Task):
    ...     ConfigClass = TopConfig
    ...     _DefaultName = "top"
    ...     def __init__(self, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.makeSubtask("fit")
    >>> config = TopConfig()
    >>> config.fit.maxIter = 2
    >>> top = TopTask(config=config)
    >>> top.fit.getFullName(), top.fit.run(3).value
    ('top.fit', 6)
    >>> "runStartCpuTime" in top.getFullMetadata()["top:fit"]
    True
    """

    ConfigClass: ClassVar[type[Config]]
    _DefaultName: ClassVar[str]

    _add_module_logger_prefix: ClassVar[bool] = True
    """Prefix top-level logger names with the root package (``lsst.``)."""

    def __init__(
        self,
        config: Config | lsst.pex.config.Config | None = None,
        *,
        name: str | None = None,
        parentTask: Any | None = None,
        log: logging.Logger | LsstLogAdapter | None = None,
    ) -> None:
        # A subtask keeps its metadata in its parent's class: under a real ``lsst.pipe.base`` parent
        # (a PipelineTask) that is ``lsst.pipe.base.TaskMetadata``, which refuses any other class
        # nested in it when ``getFullMetadata`` collects the hierarchy; standalone it is ours.
        self.metadata = _metadataClass(parentTask)()
        self.__parentTask = None if parentTask is None else weakref.ref(parentTask)

        if parentTask is not None:
            if name is None:
                raise RuntimeError(f"{type(self).__name__}: name is required for a subtask")
            self._name = name
            self._fullName = parentTask._computeFullName(name)
            if config is None:
                config = getattr(parentTask.config, name)
            self._taskDict: dict[str, weakref.ReferenceType] = parentTask._taskDict
            loggerName = parentTask.log.getChild(name).name
        else:
            if name is None:
                name = getattr(self, "_DefaultName", None)
                if name is None:
                    raise RuntimeError(
                        f"{type(self).__name__}: name is required for a task unless it has attribute _DefaultName"
                    )
            self._name = name
            self._fullName = name
            if config is None:
                ConfigClass = getattr(self, "ConfigClass", None)
                if ConfigClass is None:
                    raise RuntimeError(
                        f"{type(self).__name__}: config is required for a task unless it has attribute ConfigClass"
                    )
                config = ConfigClass()
            self._taskDict = {}
            loggerName = self._fullName
            if log is not None and log.name:
                loggerName = log.getChild(loggerName).name
            elif self._add_module_logger_prefix:
                moduleRoot = type(self).__module__.split(".")[0] + "."
                if not loggerName.startswith(moduleRoot):
                    loggerName = moduleRoot + loggerName

        self.log: LsstLogAdapter = getLogger(loggerName)
        self.config: Config = self._taskConfig(config)
        self.config.validate()
        self._taskDict[self._fullName] = weakref.ref(self)

    def _taskConfig(self, config: Any) -> Config:
        """Return ``config`` as a pydantic `Config`, converting pex_config ones."""
        ConfigClass = getattr(self, "ConfigClass", None)
        if isinstance(config, ConfigurableInstance):
            config = config.value
        if isinstance(config, Config):
            return config
        pexConfig = sys.modules.get("lsst.pex.config")
        if pexConfig is not None:
            if isinstance(config, pexConfig.ConfigurableInstance):
                config = config.value
            if isinstance(config, pexConfig.Config):
                model = getattr(type(config), "_madnessModel", None)
                if model is None or (ConfigClass is not None and not issubclass(model, ConfigClass)):
                    model = ConfigClass
                if model is None:
                    raise RuntimeError(f"{type(self).__name__} has no ConfigClass to convert {config!r} into")
                return model.fromPexConfig(config)
        expected = ConfigClass.__name__ if ConfigClass is not None else "Config"
        raise TypeError(
            f"{type(self).__name__} needs a {expected} (or an lsst.pex.config.Config with the same fields), "
            f"not {type(config).__name__}"
        )

    @property
    def _parentTask(self) -> Any | None:
        return None if self.__parentTask is None else self.__parentTask()

    def emptyMetadata(self) -> None:
        """Empty the metadata of this task and of all its subtasks."""
        for ref in self._taskDict.values():
            task = ref()
            if task is not None:
                task.metadata = type(task.metadata)()

    def getFullMetadata(self) -> TaskMetadata:
        """Get the metadata of this task and all its subtasks.

        Returns
        -------
        metadata : `TaskMetadata`
            One entry per task, keyed by the full task name with ``.``
            replaced by ``:`` (``"top:deblend"``), so that a subtask and a
            metadata item with the same name cannot clash.
        """
        fullMetadata = type(self.metadata)()
        for fullName, task in self.getTaskDict().items():
            fullMetadata[fullName.replace(".", ":")] = task.metadata
        return fullMetadata

    def getFullName(self) -> str:
        """Get the hierarchical task name.

        Returns
        -------
        fullName : `str`
            Names of the parents and of this task joined by ``.``, e.g.
            ``"top.deblend.fit"``.
        """
        return self._fullName

    def getName(self) -> str:
        """Get the brief name of the task.

        Returns
        -------
        name : `str`
            E.g. ``"fit"`` for the task whose full name is ``"top.deblend.fit"``.
        """
        return self._name

    def getTaskDict(self) -> dict[str, Task]:
        """Get all tasks of the hierarchy this task belongs to.

        Returns
        -------
        taskDict : `dict` [`str`, `Task`]
            Full task name to task, for the top-level task and every
            subtask made so far (a new dict; the underlying registry is
            shared by the whole hierarchy).
        """
        tasks = {}
        for fullName, ref in self._taskDict.items():
            task = ref()
            if task is not None:
                tasks[fullName] = task
        return tasks

    def makeSubtask(self, name: str, **keyArgs: Any) -> None:
        """Make a subtask and store it as attribute ``name``.

        Parameters
        ----------
        name : `str`
            Name of the subtask, which is also the name of its
            `ConfigurableField` in ``self.config``.
        **keyArgs : `~typing.Any`
            Extra keyword arguments for the subtask constructor (``config``
            and ``parentTask`` are provided).

        Raises
        ------
        KeyError
            Raised if the config has no field ``name``.
        """
        taskField = getattr(self.config, name, None)
        if taskField is None:
            raise KeyError(f"{self.getFullName()}'s config does not have field {name!r}")
        subtask = taskField.apply(name=name, parentTask=self, **keyArgs)
        setattr(self, name, subtask)

    @contextlib.contextmanager
    def timer(self, name: str, logLevel: int = logging.DEBUG) -> Iterator[None]:
        """Record timing metadata for a block of code.

        Parameters
        ----------
        name : `str`
            Item name prefix: ``<name>Start*`` and ``<name>End*`` items are
            added (``<name>StartCpuTime``, ``<name>EndUtc``...).
        logLevel : `int`, optional
            Level of the timing log messages.

        Yields
        ------
        None
            The end items are recorded also when the block raises.

        Notes
        -----
        The items are those of `lsst.utils.timer.logInfo`, as in
        ``lsst.pipe.base.Task.timer``.
        """
        logInfo(obj=self, prefix=name + "Start", logLevel=logLevel)
        try:
            yield
        finally:
            logInfo(obj=self, prefix=name + "End", logLevel=logLevel)

    @classmethod
    def makeField(cls, doc: str) -> Any:
        """Make a `ConfigurableField` targeting this task.

        Parameters
        ----------
        doc : `str`
            Description of the field.

        Returns
        -------
        field : `pydantic.fields.FieldInfo`
            Use as ``deblend: ConfigurableField = DeblendTask.makeField("...")``.
        """
        return ConfigurableField(doc=doc, target=cls)

    @classmethod
    def makePexConfigClass(cls) -> type[lsst.pex.config.Config]:
        """Return the ``lsst.pex.config`` mirror of ``ConfigClass``.

        Returns
        -------
        pexConfigClass : `type` [`lsst.pex.config.Config`]
            ``to_pex_config(cls.ConfigClass)``; use it to retarget a
            pex_config subtask field at this task::

                config.sub.retarget(MyTask, ConfigClass=MyTask.makePexConfigClass())

        Raises
        ------
        ImportError
            Raised if ``lsst.pex.config`` is not installed.
        """
        from .pexConfigBridge import to_pex_config

        return to_pex_config(cls.ConfigClass)

    @classmethod
    def makePexTarget(cls) -> type:
        """Return a pex_config-compatible stand-in for this task class.

        Returns
        -------
        target : `type`
            ``to_pex_target(cls)``: its ``ConfigClass`` is
            `makePexConfigClass` and calling it builds this task, so
            ``config.sub.retarget(MyTask.makePexTarget())`` works in a
            pex_config pipeline config.

        Raises
        ------
        ImportError
            Raised if ``lsst.pex.config`` is not installed.
        """
        from .pexConfigBridge import to_pex_target

        return to_pex_target(cls)

    def _computeFullName(self, name: str) -> str:
        return f"{self._fullName}.{name}"

    @staticmethod
    def _unpickle_via_factory(factory: Callable[..., Task], args: Sequence[Any], kwargs: dict[str, Any]) -> Task:
        return factory(*args, **kwargs)

    def _reduce_kwargs(self) -> dict[str, Any]:
        return dict(config=self.config, name=self._name, parentTask=self._parentTask)

    def __reduce__(self) -> tuple[Any, ...]:
        return self._unpickle_via_factory, (self.__class__, [], self._reduce_kwargs())
