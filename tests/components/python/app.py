"""Two typed tasks written in Python, made a component by componentize-py.

Built by the tests (when componentize-py is installed) with
`componentize-py -d wit -w tasks componentize app -o tasks.wasm`; wasmproc
runs each export as a task, its arguments and result as JSON.
"""

import wit_world
from componentize_py_types import Err
from wit_world import Stats


class WitWorld(wit_world.WitWorld):
    def summarize(self, values: list[float]) -> Stats:
        count = len(values)
        return Stats(count=count, mean=sum(values) / count if count else 0.0)

    def greet(self, name: str) -> str:
        if not name:
            raise Err("the name is empty")
        return f"hello, {name}"
