// Metric lines (EMF on stdout) from the notifier for every simulated run would drown a tool's own
// output and cost most of its time: off unless the caller set POWERTOOLS_METRICS_DISABLED itself.
// Import this before anything that loads lambda/shared/metrics.ts.
process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
export {};
