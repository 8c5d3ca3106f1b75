import { describeMallocArenas } from '../src/mallocArenas';

describe('the worker banner on malloc arenas', () => {
  it('names the cap and where it comes from', () => {
    expect(describeMallocArenas({ MALLOC_ARENA_MAX: '2' }, true)).toBe('malloc arenas: at most 2 (MALLOC_ARENA_MAX)');
    expect(describeMallocArenas({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1:glibc.malloc.arena_max=4' }, true)).toBe('malloc arenas: at most 4 (GLIBC_TUNABLES)');
  });

  it('says what to set when nothing caps them, and nothing off glibc', () => {
    expect(describeMallocArenas({}, true)).toContain('set MALLOC_ARENA_MAX=2');
    expect(describeMallocArenas({ MALLOC_ARENA_MAX: '0' }, true)).toContain('set MALLOC_ARENA_MAX=2');
    expect(describeMallocArenas({ MALLOC_ARENA_MAX: '2' }, false)).toContain('not glibc');
  });
});
