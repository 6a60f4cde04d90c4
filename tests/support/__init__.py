"""What several test modules share: helpers, constants and data builders (no tests here).

Test modules import from here (``from tests.support.child_process import child_env``),
never from one another."""
