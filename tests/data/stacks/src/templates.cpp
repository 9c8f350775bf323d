// C++ names for demangling: templates, namespaces, a class method, operator new.
#include <cstddef>
#include <cstring>
#include <vector>

namespace heap { namespace detail {
template <typename T, std::size_t N>
struct Pool {
    __attribute__((noinline)) T *grow(std::size_t count) {
        T *p = new T[count * N];
        std::memset(static_cast<void *>(p), 0, sizeof(T) * count * N);
        chunks.push_back(p);
        return p;
    }
    std::vector<T *> chunks;
};
}  // namespace detail

template <typename T>
__attribute__((noinline)) T *allocate(detail::Pool<T, 4> &pool, std::size_t count) {
    T *p = pool.grow(count);
    __asm__ volatile("" ::: "memory");
    return p;
}
}  // namespace heap

int main() {
    heap::detail::Pool<double, 4> pool;
    for (int i = 0; i < 6; i++) heap::allocate(pool, 4000);
    heap::detail::Pool<long, 4> big;
    heap::allocate(big, 100000);
    return 0;
}
