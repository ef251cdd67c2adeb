// Mocha's spec reporter plus the plain closing line CI reads:
// "N passed, N failed, N skipped, N not run". "not run" counts the tests that
// were selected but never reported a result: a failed before/beforeEach hook
// makes Mocha skip the rest of its suite silently (the hook is the one failure
// counted), so without it a broken setup would read as a short, green run.
'use strict';
const Mocha = require('mocha');
const {
  EVENT_RUN_BEGIN,
  EVENT_RUN_END,
  EVENT_SUITE_BEGIN,
  EVENT_SUITE_END,
  EVENT_TEST_PASS,
  EVENT_TEST_FAIL,
  EVENT_TEST_PENDING,
} = Mocha.Runner.constants;
const path = require('node:path');

class NovaDockerReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    let selected = 0;
    const reported = new Set();
    runner.once(EVENT_RUN_BEGIN, () => {
      selected = runner.grepTotal(runner.suite);
    });
    for (const ev of [EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING]) {
      runner.on(ev, (test) => {
        // a hook's failure is reported as a "test" of type hook: not one of the selected tests
        if (test && test.type === 'test') reported.add(test);
      });
    }
    // wall time per file: the suites directly under the root, summed by the file they come from
    const fileMs = new Map();
    const started = new Map();
    runner.on(EVENT_SUITE_BEGIN, (suite) => {
      if (suite.parent && suite.parent.root && suite.file) started.set(suite, Date.now());
    });
    runner.on(EVENT_SUITE_END, (suite) => {
      const t0 = started.get(suite);
      if (t0 === undefined) return;
      const file = path.relative(process.cwd(), suite.file);
      fileMs.set(file, (fileMs.get(file) || 0) + Date.now() - t0);
    });
    runner.once(EVENT_RUN_END, () => {
      const slowest = [...fileMs].sort((a, b) => b[1] - a[1]).slice(0, 15);
      if (slowest.length > 1) {
        process.stdout.write('\nslowest files:\n');
        for (const [file, ms] of slowest) process.stdout.write(`  ${(ms / 1000).toFixed(0).padStart(6)} s  ${file}\n`);
      }
      const s = runner.stats || {};
      const notRun = Math.max(0, selected - reported.size);
      process.stdout.write(
        `\n${s.passes || 0} passed, ${s.failures || 0} failed, ${s.pending || 0} skipped, ${notRun} not run\n`,
      );
    });
  }
}
module.exports = NovaDockerReporter;
