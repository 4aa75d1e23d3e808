"""The real logprobs checks, so that a test can grade a fixture folder holding both a
broken logprobs.py and a toy.py with `--checks tests/fixtures_grader/checks`.

The list is spelled out (rather than re-exporting EXERCISES) so the runner can read the
exercise names without importing torch."""
from grader.checks.logprobs import (check_gradient_flows_to_logits, check_inputs_are_not_modified,
                                    check_large_logits_are_stable,
                                    check_masked_positions_do_not_contribute,
                                    check_matches_slow_reference,
                                    check_returns_a_float_tensor_of_shape_B,
                                    check_uniform_logits_closed_form)

EXERCISES = {
    "sequence_logprobs_from_logits": [check_returns_a_float_tensor_of_shape_B, check_uniform_logits_closed_form,
                                      check_matches_slow_reference, check_masked_positions_do_not_contribute,
                                      check_large_logits_are_stable, check_gradient_flows_to_logits,
                                      check_inputs_are_not_modified],
}
