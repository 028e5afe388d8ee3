#include <stdio.h>

int foo(void);

int main(void) {
    printf("foo says %d\n", foo());
    return 0;
}
