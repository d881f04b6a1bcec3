"""`rlhfops demo`: the five plays end to end, driving only the product's public paths (as a user's
script would). :mod:`.plays` runs the steps of :mod:`.steps`; :mod:`.raters` holds the SIMULATED raters,
:mod:`.sim` the SIMULATED production week, :mod:`.eval` reads back the `eval run` evaluations,
:mod:`.report` adds the demo's sections to the gate report, :mod:`.narrate` prints what happens."""
