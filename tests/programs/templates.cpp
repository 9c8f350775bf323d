/* templates: C++ allocations through templates, namespaces and operator new, so that
 * demangled names such as heaptest::pools::Pool<heaptest::Block<4096ul>, 64ul>::grow()
 * show up in stacks (issue 3).
 *
 * build: -O1 -fno-inline
 * Syscalls made by main (the C++ runtime's start-up aside: libstdc++ allocates an
 * emergency exception pool of ~72 KiB with malloc at load time, brk):
 *   brk     Pool<Block<64>, 1024>::grow() x 8: new[] of 64 KiB each, under the mmap
 *           threshold: heap growth by brk
 *   mmap    Pool<Block<4096>, 64>::grow() x 3: new[] of 256 KiB each, one mapping of
 *           256 KiB + 4096 each
 *   mmap    heaptest::io::Buffer<char>::reserve(8 MiB) through std::vector<char>:
 *           one mapping of 8 MiB + 4096
 *   munmap  every Pool chunk and the vector, freed when main returns. */
#include <cstddef>
#include <memory>
#include <vector>

namespace heaptest {

template <std::size_t Size>
struct Block {
    unsigned char bytes[Size];
};

namespace pools {

template <typename T, std::size_t PerChunk>
class Pool {
public:
    __attribute__((noinline)) T *grow()
    {
        chunks_.emplace_back(new T[PerChunk]);
        T *chunk = chunks_.back().get();
        for (std::size_t i = 0; i < PerChunk; ++i)
            chunk[i].bytes[0] = static_cast<unsigned char>(i);
        return chunk;
    }
    std::size_t chunks() const { return chunks_.size(); }

private:
    std::vector<std::unique_ptr<T[]>> chunks_;
};

}  // namespace pools

namespace io {

template <typename Byte>
class Buffer {
public:
    __attribute__((noinline)) void reserve(std::size_t n)
    {
        data_.reserve(n);
        data_.push_back(Byte{1});
    }
    std::size_t capacity() const { return data_.capacity(); }

private:
    std::vector<Byte> data_;
};

}  // namespace io

template <typename PoolT>
__attribute__((noinline)) std::size_t fill(PoolT &pool, int times)
{
    for (int i = 0; i < times; ++i)
        pool.grow();
    return pool.chunks();
}

}  // namespace heaptest

int main()
{
    heaptest::pools::Pool<heaptest::Block<64>, 1024> small;
    heaptest::pools::Pool<heaptest::Block<4096>, 64> large;
    heaptest::io::Buffer<char> buffer;
    std::size_t n = heaptest::fill(small, 8) + heaptest::fill(large, 3);
    buffer.reserve(8u << 20);
    return n == 11 && buffer.capacity() >= (8u << 20) ? 0 : 1;
}
