#include <stdio.h>

int main(void) {
    puts("hello from orbit");
    return 0;
}
