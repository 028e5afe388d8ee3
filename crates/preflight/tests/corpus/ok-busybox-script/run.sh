#!/bin/sh
echo hello from orbit
