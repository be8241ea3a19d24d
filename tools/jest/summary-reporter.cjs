// Prints the run's totals alone on the last line, `N passed, N failed`, the line CI reads.
class SummaryReporter {
  onRunComplete(_contexts, results) {
    process.stdout.write(`\n${results.numPassedTests} passed, ${results.numFailedTests} failed\n`);
  }
}

module.exports = SummaryReporter;
