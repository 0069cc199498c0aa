import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Builds dist/ once (server bundle and console), as npm start does, before any test starts a server.
    globalSetup: ["test/global-setup.ts"],
    // .ci/run asks for a JSON report beside the usual output, to print one line of totals.
    ...(process.env.VITEST_JSON_REPORT
      ? { reporters: ["default", "json"], outputFile: { json: process.env.VITEST_JSON_REPORT } }
      : {}),
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Each file starts its own servers on port 0; two workers suit a 2-core machine.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
