"""Property-based fuzzing of the server's own OpenAPI document with schemathesis: whatever it
sends to any operation, no answer is a 5xx. Bounded: a few derandomized examples per operation.

(The operations are walked in one test because the schema is only known once the shared server
runs; ``schemathesis.pytest.from_fixture`` does not work with this pytest.)"""

import hypothesis
import schemathesis
from schemathesis.checks import not_a_server_error

MAX_EXAMPLES = 12
SETTINGS = hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                               suppress_health_check=list(hypothesis.HealthCheck),
                               phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])


def test_no_request_to_any_operation_gets_a_server_error(url):
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10

    for operation in operations:
        @SETTINGS
        @hypothesis.given(case=operation.as_strategy())
        def no_server_error(case) -> None:
            case.call_and_validate(base_url=url, checks=[not_a_server_error], timeout=60)

        no_server_error()
