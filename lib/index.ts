export * from './app-source';
export * from './app-tier';
export * from './constructs/stage-network';
export * from './constructs/single-server';
export * from './constructs/separated-db';
export * from './stages/user-stage';
export * from './stages/stage-stack';
export * from './constructs/cdn-static';
