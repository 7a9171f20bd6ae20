// The part of benchmark.js 2.1.4 that bench/micro.ts uses, typed locally so
// the project needs no @types package for one file.
declare module 'benchmark' {
  namespace Benchmark {
    interface Options {
      maxTime?: number;
      minSamples?: number;
      minTime?: number;
      initCount?: number;
      delay?: number;
    }
    interface Stats {
      mean: number;
      rme: number;
      sample: number[];
    }
    interface Target {
      name: string;
      hz: number;
      count: number;
      cycles: number;
      error?: Error;
      stats: Stats;
    }
    class Suite {
      constructor(name?: string);
      add(name: string, fn: () => void, options?: Options): Suite;
      on(event: 'cycle' | 'complete' | 'error', listener: (event: { target: Target }) => void): Suite;
      run(options?: { async?: boolean }): Suite;
    }
  }
  export = Benchmark;
}
